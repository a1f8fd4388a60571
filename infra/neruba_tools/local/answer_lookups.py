"""Take out two lookups that moto (5.2) repeats on every request although their answer never changes.

Profiling a functional test (728 DynamoDB and SQS requests on in-process moto) put half of moto's time,
and a third of the test's, in writing the answers: for every member of every structure in an answer
(each attribute of each item read back), moto's serializer builds a context object and asks six alias
providers which names the member may have on the Python object holding it. For an answer that is a
plain ``dict`` those names depend only on the member's shape, its parent shape and the member's key, so
they are worked out once per (picker, key) and kept on the shape. A shape gets a new parent when moto
walks another structure holding it, so an entry is used only while its parent is the one it was worked
out for. Everything else (an object that is not a plain dict, a picker with response transformers, a
dotted name) goes through moto's own code.

The same names also let a structure be written without a lookup per member: moto asks for each of a
structure's members in turn (an attribute value has ten: ``S``, ``N``, ``M``, ... of which one is there),
each through a method call, a picker context and the alias lookup. For a plain ``dict`` and a serializer
whose member writing and lookup are moto's own, ``_serialize_type_structure`` here keeps per structure
shape the list of (member, shape, names) and picks each member from the dict directly; it writes what it
finds through moto's own ``_serialize``, in the shape's member order, as moto does.

The second lookup: for every request moto lists the handler class's methods (``inspect.getmembers``) to
find the action; the list is kept per class.

The answers are the same with or without these shortcuts: tests/infra/test_answer_lookups.py sends the
same requests with and without them and compares what comes back. The shortcuts only change how long
moto takes to answer; the tests, the local stack (``EmulatorPatches``) and the benchmarks use them.

Example:
    >>> with AnswerLookups():  # doctest: +SKIP
    ...     ...  # moto requests
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_ALIASES = "_neruba_alias_names"  # the attribute of a moto shape holding its worked-out member names
_MEMBERS = "_neruba_members"  # the attribute of a structure shape holding its members with their names


class AnswerLookups:
    """Installs both shortcuts (``install``/``__enter__``) and puts moto back (``uninstall``/``__exit__``);
    nested or repeated installs install once."""

    _depth = 0
    _guard = threading.Lock()

    def __init__(self) -> None:
        from moto.core import responses, serialize

        self._responses = responses
        self._serializer = serialize.ResponseSerializer
        self._pickers = (serialize.AttributePicker, serialize.XFormedAttributePicker)

    def install(self) -> AnswerLookups:
        with AnswerLookups._guard:
            if AnswerLookups._depth == 0:
                self._install()
            AnswerLookups._depth += 1
        return self

    def uninstall(self) -> None:
        with AnswerLookups._guard:
            if AnswerLookups._depth == 0:
                return
            AnswerLookups._depth -= 1
            if AnswerLookups._depth == 0:
                self._responses.method_names_from_class = AnswerLookups._real_names
                self._serializer.get_value = AnswerLookups._real_get_value  # type: ignore[method-assign]
                self._serializer._serialize_type_structure = AnswerLookups._real_structure  # type: ignore[method-assign]

    def __enter__(self) -> AnswerLookups:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _install(self) -> None:
        real_names = self._responses.method_names_from_class
        real_get_value = self._serializer.get_value
        AnswerLookups._real_names = real_names
        AnswerLookups._real_get_value = real_get_value
        self._responses.method_names_from_class = functools.cache(real_names)
        pickers = self._pickers

        def get_value(serializer: Any, value: Any, key: str, shape: Any) -> Any:
            picker = serializer._value_picker
            if type(value) is not dict or type(picker) not in pickers or picker.response_transformers:
                return real_get_value(serializer, value, key, shape)
            names = _member_names(serializer, picker, value, key, shape)
            if names is None:
                return real_get_value(serializer, value, key, shape)
            for name in names:
                if name in value:
                    return value[name]
            return None

        self._serializer.get_value = get_value  # type: ignore[method-assign]

        serializer_class = self._serializer
        real_structure = serializer_class._serialize_type_structure
        real_member = serializer_class._serialize_structure_member
        AnswerLookups._real_structure = real_structure

        def serialize_structure(serializer: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
            picker = serializer._value_picker
            kind = type(serializer)
            if (
                type(value) is not dict
                or type(picker) not in pickers
                or picker.response_transformers
                or kind._serialize_structure_member is not real_member
                or kind.get_value is not get_value
            ):
                return real_structure(serializer, serialized, value, shape, key)
            wrapper = serializer.MAP_TYPE() if key else serialized
            for member_key, member_shape, names in _members(serializer, picker, value, shape):
                member_shape.parent = shape  # as moto does, for the lookups of the member's own members
                if names is None:
                    member_value = get_value(serializer, value, member_key, member_shape)
                else:
                    member_value = None
                    for name in names:
                        if name in value:
                            member_value = value[name]
                            break
                if member_value is not None:
                    serializer._serialize(wrapper, member_value, member_shape, member_key)
            if key:
                serializer._default_serialize(serialized, wrapper, shape, key)

        serializer_class._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def _members(serializer: Any, picker: Any, value: dict[str, Any], shape: Any) -> Any:
    """(member key, member shape, names or None) of each member of structure ``shape``, in its order, as
    ``_member_names`` gives them with the member's parent set to ``shape``."""
    cache = shape.__dict__.get(_MEMBERS)
    if cache is None:
        cache = shape.__dict__[_MEMBERS] = {}
    entry_key = (type(picker), tuple(picker.alias_providers))
    members = cache.get(entry_key)
    if members is None:
        members = []
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape
            members.append(
                (member_key, member_shape, _member_names(serializer, picker, value, member_key, member_shape))
            )
        cache[entry_key] = members
    return members


def _member_names(serializer: Any, picker: Any, value: dict[str, Any], key: str, shape: Any) -> Any:
    """The names ``picker`` tries, in its order, for member ``key`` of ``shape`` on a plain dict; None when
    a name is dotted (a path moto's own lookup follows)."""
    from moto.core.serialize import AttributePickerContext

    if shape is None:
        return None
    cache = shape.__dict__.get(_ALIASES)
    if cache is None:
        cache = shape.__dict__[_ALIASES] = {}
    parent = getattr(shape, "parent", None)
    entry_key = (type(picker), tuple(picker.alias_providers), key)
    entry = cache.get(entry_key)
    if entry is None or entry[0] is not parent:
        context = AttributePickerContext(
            obj=value,
            key=key,
            shape=shape,
            operation_model=serializer.operation_model,
            service_model=serializer.operation_model.service_model,
            key_path=".".join(serializer.path),
        )
        names = tuple(picker.get_possible_keys(context))
        entry = (parent, None if any("." in name for name in names) else names)
        cache[entry_key] = entry
    return entry[1]

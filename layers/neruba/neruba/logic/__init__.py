"""Use cases: what a handler calls. Plain Python over the repositories and the domain."""

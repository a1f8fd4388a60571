"""Operator use cases on the stack itself: dead-letter queues."""

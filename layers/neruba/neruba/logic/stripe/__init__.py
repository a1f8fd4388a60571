"""Stripe: receiving and processing webhook events, pushing finalized invoices to Stripe, operator actions
on stored events, and the rules an event must meet before it moves money (docs/stripe.md)."""

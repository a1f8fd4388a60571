"""The resources of both clients: one line per route (see ``_resource.py``)."""

from __future__ import annotations

from neruba_client import routes as r
from neruba_client._resource import M, Resource, endpoint, paginated


class Customers(Resource[M]):
    list = paginated(r.list_customers)
    create = endpoint(r.create_customer)
    retrieve = endpoint(r.get_customer)
    update = endpoint(r.update_customer)
    archive = endpoint(r.archive_customer)
    balance = endpoint(r.get_balance)
    credit_grants = paginated(r.list_credit_grants)
    ledger = paginated(r.list_postings)
    subscriptions = paginated(r.list_customer_subscriptions)
    upcoming_invoice = endpoint(r.get_upcoming_invoice)
    usage = endpoint(r.get_usage)
    limits = endpoint(r.get_customer_limits)
    set_limits = endpoint(r.put_customer_limits)
    entitlements = endpoint(r.list_entitlements)
    entitlement = endpoint(r.get_entitlement)
    grant_entitlement = endpoint(r.grant_entitlement)


class Events(Resource[M]):
    send = endpoint(r.send_events)
    retrieve = endpoint(r.get_event)
    list = paginated(r.list_events)
    outcomes = endpoint(r.get_outcomes)


class Meters(Resource[M]):
    list = paginated(r.list_meters)
    create = endpoint(r.create_meter)
    retrieve = endpoint(r.get_meter)


class Plans(Resource[M]):
    list = paginated(r.list_plans)
    create = endpoint(r.create_plan)
    retrieve = endpoint(r.get_plan)
    publish_version = endpoint(r.publish_plan_version)
    retrieve_version = endpoint(r.get_plan_version)


class Subscriptions(Resource[M]):
    create = endpoint(r.create_subscription)
    retrieve = endpoint(r.get_subscription)
    cancel = endpoint(r.cancel_subscription)
    change_plan = endpoint(r.change_plan)


class Invoices(Resource[M]):
    list = paginated(r.list_invoices)
    retrieve = endpoint(r.get_invoice)
    explain = endpoint(r.explain_invoice)
    completeness = endpoint(r.invoice_completeness)
    credit_notes = paginated(r.list_invoice_credit_notes)
    credit_note = endpoint(r.get_credit_note)
    explain_credit_note = endpoint(r.explain_credit_note)


class Admin(Resource[M]):
    """Operator routes: they need a key with the ``admin`` scope."""

    audit = paginated(r.list_audit)
    billing_runs = paginated(r.list_billing_runs)
    create_billing_run = endpoint(r.create_billing_run)
    billing_run = endpoint(r.get_billing_run)
    void_credit_grant = endpoint(r.void_credit_grant)
    put_auto_top_up = endpoint(r.put_auto_top_up)
    adjust_balance = endpoint(r.adjust_balance)
    grant_credits = endpoint(r.grant_credits)
    create_dispute = endpoint(r.create_dispute)
    close_dispute = endpoint(r.close_dispute)
    create_refund = endpoint(r.create_refund)
    rerun_invoice = endpoint(r.rerun_invoice)
    create_one_off_charge = endpoint(r.create_one_off_charge)
    one_off_charges = paginated(r.list_one_off_charges)
    void_one_off_charge = endpoint(r.void_one_off_charge)
    void_event = endpoint(r.void_event)
    amend_event = endpoint(r.amend_event)
    open_backfill = endpoint(r.open_backfill)
    backfills = paginated(r.list_backfills)
    backfill = endpoint(r.get_backfill)
    send_backfill_events = endpoint(r.send_backfill_events)
    preview_backfill = endpoint(r.preview_backfill)
    commit_backfill = endpoint(r.commit_backfill)
    cancel_backfill = endpoint(r.cancel_backfill)
    revert_backfill = endpoint(r.revert_backfill)
    create_credit_note = endpoint(r.create_credit_note)
    void_invoice = endpoint(r.void_invoice)
    create_coupon = endpoint(r.create_coupon)
    coupons = paginated(r.list_coupons)
    coupon = endpoint(r.get_coupon)
    archive_coupon = endpoint(r.archive_coupon)
    create_discount = endpoint(r.create_discount)
    discounts = paginated(r.list_discounts)
    discount = endpoint(r.get_discount)
    remove_discount = endpoint(r.remove_discount)
    create_tax_rate = endpoint(r.create_tax_rate)
    tax_rates = paginated(r.list_tax_rates)
    archive_tax_rate = endpoint(r.archive_tax_rate)
    tax_jurisdiction = endpoint(r.get_tax_jurisdiction)
    set_tax_jurisdiction = endpoint(r.set_tax_jurisdiction)
    stripe_events = paginated(r.list_stripe_events)
    stripe_event = endpoint(r.get_stripe_event)
    replay_stripe_event = endpoint(r.replay_stripe_event)
    dlqs = paginated(r.list_dlqs)
    redrive_dlq = endpoint(r.redrive_dlq)
    alarms = paginated(r.list_alarms)
    sweeps = paginated(r.list_sweeps)
    create_sweep = endpoint(r.create_sweep)
    sweep = endpoint(r.get_sweep)
    webhook_endpoints = paginated(r.list_webhook_endpoints)
    create_webhook_endpoint = endpoint(r.create_webhook_endpoint)
    webhook_endpoint = endpoint(r.get_webhook_endpoint)
    update_webhook_endpoint = endpoint(r.update_webhook_endpoint)
    delete_webhook_endpoint = endpoint(r.delete_webhook_endpoint)
    rotate_webhook_secret = endpoint(r.rotate_webhook_secret)
    webhook_events = paginated(r.list_webhook_events)
    webhook_event = endpoint(r.get_webhook_event)
    resend_webhooks = endpoint(r.resend_webhooks)


class Service(Resource[M]):
    health = endpoint(r.health)
    ready = endpoint(r.ready)

"""Which top-level parameters each endpoint takes: all that Stripe accepts (others are
rejected as unknown, as Stripe does) and the ones the simulator acts on (the rest of Stripe's
are ignored and logged, except the REJECTED ones, which would change the outcome)."""

from __future__ import annotations

RETRIEVE = frozenset({"expand"})

CUSTOMER_ALLOWED = frozenset(
    {
        "address",
        "balance",
        "business_name",
        "cash_balance",
        "default_source",
        "description",
        "email",
        "expand",
        "individual_name",
        "invoice_prefix",
        "invoice_settings",
        "metadata",
        "name",
        "next_invoice_sequence",
        "payment_method",
        "phone",
        "preferred_locales",
        "shipping",
        "source",
        "tax",
        "tax_exempt",
        "tax_id_data",
        "test_clock",
        "validate",
    }
)
CUSTOMER_SIMULATED = frozenset({"description", "email", "expand", "metadata", "name", "phone"})

PRICE_ALLOWED = frozenset(
    {
        "active",
        "billing_scheme",
        "currency",
        "currency_options",
        "custom_unit_amount",
        "expand",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "product_data",
        "recurring",
        "tax_behavior",
        "tiers",
        "tiers_mode",
        "transfer_lookup_key",
        "transform_quantity",
        "unit_amount",
        "unit_amount_decimal",
    }
)
PRICE_SIMULATED = frozenset(
    {
        "currency",
        "expand",
        "lookup_key",
        "metadata",
        "nickname",
        "product",
        "product_data",
        "recurring",
        "unit_amount",
    }
)
PRICE_REJECTED = frozenset(
    {
        "billing_scheme",
        "currency_options",
        "custom_unit_amount",
        "tiers",
        "tiers_mode",
        "transform_quantity",
        "unit_amount_decimal",
    }
)

SESSION_ALLOWED = frozenset(
    {
        "adaptive_pricing",
        "after_expiration",
        "allow_promotion_codes",
        "allowed_payment_method_types",
        "automatic_tax",
        "billing_address_collection",
        "branding_settings",
        "cancel_url",
        "client_reference_id",
        "consent_collection",
        "currency",
        "custom_fields",
        "custom_text",
        "customer",
        "customer_account",
        "customer_creation",
        "customer_email",
        "customer_update",
        "discounts",
        "excluded_payment_method_types",
        "expand",
        "expires_at",
        "integration_identifier",
        "invoice_creation",
        "line_items",
        "locale",
        "managed_payments",
        "metadata",
        "mode",
        "name_collection",
        "optional_items",
        "origin_context",
        "payment_intent_data",
        "payment_method_collection",
        "payment_method_configuration",
        "payment_method_data",
        "payment_method_options",
        "payment_method_types",
        "permissions",
        "phone_number_collection",
        "redirect_on_completion",
        "return_url",
        "saved_payment_method_options",
        "setup_intent_data",
        "shipping_address_collection",
        "shipping_options",
        "submit_type",
        "subscription_data",
        "success_url",
        "tax_id_collection",
        "ui_mode",
        "wallet_options",
    }
)
SESSION_SIMULATED = frozenset(
    {
        "cancel_url",
        "client_reference_id",
        "customer",
        "customer_email",
        "expand",
        "expires_at",
        "line_items",
        "metadata",
        "mode",
        "subscription_data",
        "success_url",
        "ui_mode",
    }
)

SUBSCRIPTION_UPDATE_ALLOWED = frozenset(
    {
        "add_invoice_items",
        "application_fee_percent",
        "automatic_tax",
        "billing_cycle_anchor",
        "billing_schedules",
        "billing_thresholds",
        "cancel_at",
        "cancel_at_period_end",
        "cancellation_details",
        "collection_method",
        "days_until_due",
        "default_payment_method",
        "default_source",
        "default_tax_rates",
        "description",
        "discounts",
        "expand",
        "invoice_settings",
        "items",
        "metadata",
        "off_session",
        "on_behalf_of",
        "pause_collection",
        "payment_behavior",
        "payment_settings",
        "pending_invoice_item_interval",
        "proration_behavior",
        "proration_date",
        "transfer_data",
        "trial_end",
        "trial_from_plan",
        "trial_settings",
    }
)
SUBSCRIPTION_UPDATE_SIMULATED = frozenset(
    {"cancel_at_period_end", "cancellation_details", "expand", "metadata"}
)
SUBSCRIPTION_UPDATE_REJECTED = frozenset(
    {
        "add_invoice_items",
        "billing_cycle_anchor",
        "cancel_at",
        "collection_method",
        "days_until_due",
        "discounts",
        "items",
        "pause_collection",
        "trial_end",
        "trial_from_plan",
    }
)

SUBSCRIPTION_CANCEL_ALLOWED = frozenset(
    {"cancellation_details", "expand", "invoice_now", "prorate"}
)
SUBSCRIPTION_CANCEL_SIMULATED = frozenset({"cancellation_details", "expand"})

SUBSCRIPTION_LIST_ALLOWED = frozenset(
    {
        "automatic_tax",
        "collection_method",
        "created",
        "current_period_end",
        "current_period_start",
        "customer",
        "customer_account",
        "ending_before",
        "expand",
        "limit",
        "plan",
        "price",
        "starting_after",
        "status",
        "test_clock",
    }
)
SUBSCRIPTION_LIST_SIMULATED = frozenset(
    {"customer", "ending_before", "expand", "limit", "price", "starting_after", "status"}
)

PORTAL_ALLOWED = frozenset(
    {
        "after_expiration",
        "configuration",
        "customer",
        "customer_account",
        "expand",
        "flow_data",
        "locale",
        "on_behalf_of",
        "return_url",
    }
)
PORTAL_SIMULATED = frozenset({"customer", "expand", "flow_data", "return_url"})

EVENT_LIST_ALLOWED = frozenset(
    {
        "created",
        "delivery_success",
        "ending_before",
        "expand",
        "limit",
        "starting_after",
        "type",
        "types",
    }
)
EVENT_LIST_SIMULATED = EVENT_LIST_ALLOWED - {"created"}

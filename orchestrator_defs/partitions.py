"""One partition per tenant, keyed by slug. A leaf module (imports nothing of ours): assets and
sensors may use it without depending on the rest of the code location."""

import dagster as dg

tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")

"""Pull connectors: vendors whose sales tenpo fetches from the vendor's API (a vendor plugin
names its connector module in ``Vendor.connector``; ``tenpo pos pull <vendor>`` runs it).

A connector module defines ``run_pull(tenant_id, lake, landing, *, environ, until, backfill)``
returning a report with ``windows``, ``pages``, ``transactions``, ``landed`` and ``cursor``.
"""

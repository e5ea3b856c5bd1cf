"""Contract-testing kit for the Kling Advanced Lip-Sync API: strategies, verify, check-client.

Everything here is generated from the same OpenAPI spec and rule table the mock enforces.
"""

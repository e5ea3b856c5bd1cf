"""Examples of clients certified against the mock with the contract kit."""

"""The lip-sync domain: sessions, tasks, rules, clock and store, free of any web framework."""

"""The scheduler: which runs start, which task instances are ready and queued, recovery."""

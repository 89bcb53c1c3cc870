"""The phone: its state, its screens, the call and media sessions, the controller."""

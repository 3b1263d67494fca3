"""Model lifecycle: the champion/challenger gate, the champion pointer, promotion and rollback."""

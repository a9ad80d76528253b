"""Schedule stage: digest periods, the period ledger, and the `digestbot run` daemon."""

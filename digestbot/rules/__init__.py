"""Rules stage: the subscriptions file, the rule language, matching and ranking."""

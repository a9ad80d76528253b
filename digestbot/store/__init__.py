"""Store stage: the engine, the tables and the migrations that make them."""

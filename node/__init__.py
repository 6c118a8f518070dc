"""The fedchain participant: trains locally on private data, uploads its update, commits its hash."""

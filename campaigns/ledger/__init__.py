"""The database: models, engine and migrations, actions, members, audit, accounts."""

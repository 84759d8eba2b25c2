"""The pure core: plain functions on plain data. No Flask, SQLAlchemy, HTTP or HubSpot here."""

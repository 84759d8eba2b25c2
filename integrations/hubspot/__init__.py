"""HubSpot: the CRM client (hubspot-api-client), sync, webhooks and the app card."""

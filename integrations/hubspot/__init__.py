"""HubSpot: the Crm interface on hubspot-api-client, its JSON mapping, rate limits and note HTML."""

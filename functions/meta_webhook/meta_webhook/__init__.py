"""meta_webhook's modules: the Meta Lead Ads webhook, the Graph API fetch and the call request."""

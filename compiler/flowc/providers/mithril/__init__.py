"""The Mithril provider: REST client, domain services and the facade that composes them."""

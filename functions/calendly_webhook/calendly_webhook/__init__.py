"""calendly_webhook's modules: Calendly events parsed and recorded against their leads."""

"""tenpo: retail-store analytics data platform."""

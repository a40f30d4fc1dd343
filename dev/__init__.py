"""The local stack launcher (`python -m dev run | test`); later the Gemini and Stripe simulators."""

"""The in-repo library shared by every Gemini Backend service."""

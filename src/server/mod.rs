//! The HTTP service: REST API, async jobs, OpenAI-compatible endpoint, web UI.

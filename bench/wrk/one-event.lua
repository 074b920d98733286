-- POST /v1/events with the seed's example event, one per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"endpoint": "/v1/chat/completions", "provider": "openrouter", "model": "gpt-4o", "stages": {"request_parsing": 0.0011, "auth_validation": 0.0009, "request_preparation": 0.0004, "backend_fetch": 1.697, "stream_processing": 1.301}}'

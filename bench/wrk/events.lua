-- POST /v1/events with a generated body: wrk ... -s events.lua <url> -- <events> [json|ndjson]
-- Events look like the seed's: 4 providers x 5 models x 2 endpoints, all five stages,
-- durations with up to four decimals. The body is built once, in init.
local providers = {"openrouter", "openai", "anthropic", "bedrock"}
local models = {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b", "mistral-large"}
local endpoints = {"/v1/chat/completions", "/v1/completions"}

local function event(i)
  local provider = providers[i % #providers + 1]
  local model = models[math.floor(i / #providers) % #models + 1]
  local endpoint = endpoints[math.floor(i / 20) % #endpoints + 1]
  local ttfb = 0.2 + (i * 7919 % 3000) / 1000
  local stream = 0.5 + (i * 104729 % 4000) / 1000
  return string.format(
    '{"endpoint": "%s", "provider": "%s", "model": "%s", "stages": {"request_parsing": 0.%04d, ' ..
    '"auth_validation": 0.%04d, "request_preparation": 0.%04d, "backend_fetch": %.3f, "stream_processing": %.3f}}',
    endpoint, provider, model, 5 + i % 20, 3 + i % 11, 2 + i % 7, ttfb, stream)
end

function init(args)
  local count = tonumber(args[1] or "1")
  local format = args[2] or "json"
  local parts = {}
  for i = 0, count - 1 do parts[#parts + 1] = event(i) end
  wrk.method = "POST"
  if format == "ndjson" then
    wrk.headers["Content-Type"] = "application/x-ndjson"
    wrk.body = table.concat(parts, "\n") .. "\n"
  elseif count == 1 then
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = parts[1]
  else
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = "[" .. table.concat(parts, ",") .. "]"
  end
end

-- Any answer but 200 is counted by wrk as an error ("Non-2xx or 3xx responses").

-- POST to the Prometheus Pushgateway the histograms one seed event yields, as a client library
-- pushing per request would: wrk ... -s pushgateway.lua <url> -- <groups>
-- Each request goes to group instance=<n mod groups>; one group means every push replaces the last.
local groups = 1
local counter = 0
local body

local function histogram(name, labels, bounds, value)
  local lines = {"# TYPE " .. name .. " histogram"}
  local cumulative = 0
  for _, bound in ipairs(bounds) do
    if value <= tonumber(bound) then cumulative = 1 end
    lines[#lines + 1] = string.format('%s_bucket{%s,le="%s"} %d', name, labels, bound, cumulative)
  end
  lines[#lines + 1] = string.format('%s_bucket{%s,le="+Inf"} 1', name, labels)
  lines[#lines + 1] = string.format('%s_sum{%s} %s', name, labels, value)
  lines[#lines + 1] = string.format('%s_count{%s} 1', name, labels)
  return table.concat(lines, "\n")
end

function init(args)
  groups = tonumber(args[1] or "1")
  local slow = {"0.1", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"}
  local fast = {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"}
  local stage = {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"}
  local pair = 'provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"'
  local parts = {
    histogram("backend_ttfb_seconds", pair, slow, 1.697),
    histogram("streaming_duration_seconds", pair, slow, 1.301),
    histogram("frontend_processing_seconds", 'endpoint="/v1/chat/completions"', fast, 0.0024),
  }
  local stages = {request_parsing = 0.0011, auth_validation = 0.0009, request_preparation = 0.0004, backend_fetch = 1.697, stream_processing = 1.301}
  local lines = {"# TYPE request_stage_duration_seconds histogram"}
  for _, name in ipairs({"request_parsing", "auth_validation", "request_preparation", "backend_fetch", "stream_processing"}) do
    local text = histogram("request_stage_duration_seconds", 'stage="' .. name .. '",endpoint="/v1/chat/completions"', stage, stages[name])
    lines[#lines + 1] = text:gsub("^# TYPE [^\n]*\n", "")
  end
  parts[#parts + 1] = table.concat(lines, "\n")
  body = table.concat(parts, "\n") .. "\n"
end

function request()
  counter = counter + 1
  local path = "/metrics/job/bench/instance/" .. (counter % groups)
  return wrk.format("POST", path, {["Content-Type"] = "text/plain; version=0.0.4"}, body)
end

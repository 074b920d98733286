-- POST /v1/traces with a body read from a file (an OTLP protobuf export bench/run.py wrote):
-- wrk ... -s otlp.lua <url> -- <file>
function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-protobuf"
end

-- Any answer but 200 is counted by wrk as an error ("Non-2xx or 3xx responses").

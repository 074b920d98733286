-- POST a body read from a file: wrk ... -s file.lua <url> -- <file> [content type, default JSON]
-- (bench/run.py writes the file: an OTLP protobuf export, or the same traces as events).
function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = args[2] or "application/json"
end

-- Any answer but 200 is counted by wrk as an error ("Non-2xx or 3xx responses").

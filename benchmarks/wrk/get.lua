-- wrk script: GET the path in WRK_PATH with the API key in WRK_API_KEY; prints the same JSON line
-- as orders.lua (status counts and latency percentiles in µs).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  headers_ = {["Authorization"] = "Bearer " .. (os.getenv("WRK_API_KEY") or "")}
  path_ = os.getenv("WRK_PATH") or "/health"
end

function request()
  return wrk.format("GET", path_, headers_)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, k in pairs(thread:get("statuses")) do
      counts[code] = (counts[code] or 0) + k
    end
  end
  local parts = {}
  for code, k in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', code, k))
  end
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "statuses": {%s}, "replayed": 0, "exhausted": 0, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, table.concat(parts, ", "),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

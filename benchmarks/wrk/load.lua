-- wrk script of benchmarks/api_wrk.py. With WRK_REQUESTS_PREFIX set, each thread posts the
-- requests of its own file (WRK_REQUESTS_PREFIX .. thread number), one per line:
--   <Idempotency-Key> TAB <JSON body>
-- (a replay repeats an earlier line of the same file: same key, same body) to WRK_PATH
-- (default /v1/orders); without it, every request is a GET of WRK_PATH (default /health).
-- The API key comes from WRK_API_KEY. At the end it prints one JSON line: status counts,
-- replays, whether a file ran out, latency percentiles (µs).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  replayed = 0
  exhausted = 0
  n = 0
  lines = nil
  local prefix = os.getenv("WRK_REQUESTS_PREFIX")
  if prefix then
    lines = {}
    for line in io.lines(prefix .. id) do
      local tab = string.find(line, "\t", 1, true)
      table.insert(lines, {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)})
    end
  end
  auth = "Bearer " .. (os.getenv("WRK_API_KEY") or "")
  path_ = os.getenv("WRK_PATH") or (lines and "/v1/orders" or "/health")
end

function request()
  if not lines then
    return wrk.format("GET", path_, {["Authorization"] = auth})
  end
  n = n + 1
  if n > #lines then
    exhausted = 1
    n = 1
  end
  local item = lines[n]
  return wrk.format("POST", path_, {["Content-Type"] = "application/json", ["Authorization"] = auth,
                                     ["Idempotency-Key"] = item[1]}, item[2])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if headers["Idempotent-Replayed"] == "true" then
    replayed = replayed + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  local total_replayed, total_exhausted = 0, 0
  for _, thread in ipairs(threads) do
    for code, k in pairs(thread:get("statuses")) do
      counts[code] = (counts[code] or 0) + k
    end
    total_replayed = total_replayed + thread:get("replayed")
    total_exhausted = total_exhausted + thread:get("exhausted")
  end
  local parts = {}
  for code, k in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', code, k))
  end
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "statuses": {%s}, "replayed": %d, "exhausted": %d, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, table.concat(parts, ", "), total_replayed, total_exhausted,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

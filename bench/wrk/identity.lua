-- A browser request as the trusted proxy forwards it: identity headers set by the
-- session check, the forwarded facts, and the usual browser headers.
wrk.method = "GET"
wrk.path = "/api/v1/sessions?limit=20"
wrk.headers["Host"] = "gateway.example.com"
wrk.headers["X-Auth-Request-User"] = "alice"
wrk.headers["X-Auth-Request-Email"] = "alice@example.com"
wrk.headers["X-Auth-Request-Groups"] = "staff,admins"
wrk.headers["X-Forwarded-For"] = "203.0.113.7"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Forwarded-Host"] = "gateway.example.com"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
wrk.headers["Accept"] = "application/json, text/plain, */*"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.9"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Cookie"] = "theme=dark; _oauth2_proxy=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG9mcmVkcGx1Z2h4eXp6eQ"

-- `wrk ... -- MEAN_MS [HEADER VALUE]`: every connection waits a random, exponentially
-- distributed time (mean MEAN_MS) before each request, so N connections send
-- N * 1000 / MEAN_MS requests/s in Poisson arrivals, whatever the path's latency. With
-- MEAN_MS "-" wrk sends flat out. HEADER VALUE sets a header line on every request (a
-- Cookie of a real session, an Authorization with a real token, for a path that checks).
function init(args)
  if args[2] then
    wrk.headers[args[2]] = args[3]
  end
  local mean = tonumber(args[1])
  if mean then
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    delay = function()
      return math.floor(-math.log(1 - math.random()) * mean + 0.5)
    end
  end
end

local percentiles = { 1, 5, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99 }

done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs(percentiles) do
    parts[#parts + 1] = string.format('"%s":%d', p, latency:percentile(p))
  end
  -- The whole distribution too, at every half percentile, for the chart.
  local curve = {}
  for i = 1, 200 do
    curve[i] = string.format('%d', latency:percentile(i / 2))
  end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"non2xx":%d,"max_us":%d,"percentiles_us":{%s},"distribution_us":[%s]}\n',
    summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status, latency.max, table.concat(parts, ","), table.concat(curve, ",")))
end

-- Shared by every workload: the mock's default API key and one JSON line of results.
-- Each workload does `dofile(<this folder>/common.lua)`; run.py parses the BENCH_RESULT line.

AUTH = "Bearer mock-api-key"
wrk.headers["Authorization"] = AUTH
wrk.headers["Accept"] = "application/json"

function read_file(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data
end

-- wrk.format uses only the headers it is given, so the auth header is repeated here.
function json_post(path, body)
   local headers = {["Authorization"] = AUTH, ["Accept"] = "application/json",
                    ["Content-Type"] = "application/json"}
   return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end

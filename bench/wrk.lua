-- wrk script for every contender.
-- args: PATH [TOKENS_FILE]. With a tokens file, requests cycle through its tokens
-- (Authorization: Bearer …), so consecutive requests, and so the 64 connections, carry
-- distinct tokens and a token cache holds many entries, not one hot one. Without it,
-- requests carry the upstream's own BasicAuth (the "direct" contender).
-- done() prints one machine-readable RESULT line.
local reqs, n, i = {}, 0, 0

function init(args)
  local path, tokens = args[1], args[2]
  if tokens ~= nil and tokens ~= "" then
    for line in io.lines(tokens) do
      if line ~= "" then
        n = n + 1
        reqs[n] = wrk.format("GET", path, { ["Host"] = wrk.host, ["Authorization"] = "Bearer " .. line })
      end
    end
  else
    n = 1
    reqs[1] = wrk.format("GET", path, { ["Host"] = wrk.host, ["Authorization"] = "Basic dXNlcjpwYXNz" })
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

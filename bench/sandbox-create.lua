-- wrk script: POST a new workspace with a unique name on every request.
-- Usage: wrk -t2 -c64 -d10s -s bench/sandbox-create.lua http://127.0.0.1:PORT
local counter = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"bench-%d-%d","connectionType":"DATASOURCE","datasourceName":"postgres-main"}',
    thread_id, counter)
  return wrk.format("POST", "/api/v2/workspace", {
    ["Authorization"] = "Bearer dbn_sandbox_key",
    ["Content-Type"] = "application/json",
  }, body)
end

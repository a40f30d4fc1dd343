-- Set-up, not a measurement: create chatrooms for the POST runs as fast as wrk can.
-- `-- TOKENS OUT COUNT`: cycles through the bearer tokens in TOKENS (one per line), writes
-- "user-id chatroom-id" per created room to OUT, and stops after COUNT rooms.
local tokens, out, wanted, made, next_token = {}, nil, 0, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  out = io.open(args[2], "w")
  out:setvbuf("line")
  wanted = tonumber(args[3])
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("POST", "/api/v1/chatroom", {
    ["Authorization"] = tokens[next_token],
    ["Content-Type"] = "application/json",
  }, '{"name":"bench"}')
end

function response(status, headers, body)
  if status == 201 then
    local id = body:match('"id":"([^"]+)"')
    local user = body:match('"userId":"([^"]+)"')
    out:write(user, " ", id, "\n")
    made = made + 1
    if made >= wanted then
      wrk.thread:stop()
    end
  end
end

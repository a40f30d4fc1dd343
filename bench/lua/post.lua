-- POST /api/v1/chatroom/{id}/message, one prompt per chatroom: `-- FILE` names a file of
-- "token chatroom-id" lines (bench/load.py writes it). A room with a pending reply refuses
-- a second prompt (409), so the list must be longer than the run; when it runs out, the
-- next requests reuse it from the start and show up as non-2xx responses.
local rooms = {}
local next_room = 0
local body = '{"content":"benchmark prompt"}'

function init(args)
  for line in io.lines(args[1]) do
    local token, room = line:match("^(%S+)%s+(%S+)$")
    if token then
      rooms[#rooms + 1] = {"Bearer " .. token, "/api/v1/chatroom/" .. room .. "/message"}
    end
  end
  if #rooms == 0 then
    error("no chatrooms in " .. args[1])
  end
end

function request()
  next_room = next_room % #rooms + 1
  local room = rooms[next_room]
  return wrk.format("POST", room[2], {
    ["Authorization"] = room[1],
    ["Content-Type"] = "application/json",
  }, body)
end

-- Create then poll: each thread creates a task, then polls the tasks it created, round robin;
-- one request in POLLS+1 is a create. args: BODY_FILE [POLLS (default 4)].
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local ids, sent, next_poll = {}, 0, 0

function init(args)
   local body = read_file(assert(args[1], "usage: mixed.lua BODY_FILE [POLLS]"))
   create = json_post("/v1/videos/advanced-lip-sync", body)
   polls = tonumber(args[2] or "4")
end

function request()
   sent = sent + 1
   if #ids == 0 or sent % (polls + 1) == 1 then
      return create
   end
   next_poll = next_poll % #ids + 1
   return wrk.format("GET", "/v1/videos/advanced-lip-sync/" .. ids[next_poll])
end

function response(status, headers, body)
   -- Only a create answer carries task_info without parent_video; polls answer the same id.
   if status == 200 and not body:find('"parent_video"', 1, true) then
      local id = body:match('"task_id":"([^"]+)"')
      if id then ids[#ids + 1] = id end
   end
end

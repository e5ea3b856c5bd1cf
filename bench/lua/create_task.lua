-- POST a create-task body read from a file (base64 or URL sound_file); args: BODY_FILE.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local body = read_file(assert(args[1], "usage: create_task.lua BODY_FILE"))
   wrk.method = "POST"
   wrk.path = "/v1/videos/advanced-lip-sync"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

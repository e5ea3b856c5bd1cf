-- GET one task by id; args: TASK_ID.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/v1/videos/advanced-lip-sync/" .. assert(args[1], "usage: query_one.lua TASK_ID")
end

-- POST identify-face with a video URL; args: BODY_FILE.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local body = read_file(assert(args[1], "usage: identify_face.lua BODY_FILE"))
   wrk.method = "POST"
   wrk.path = "/v1/videos/identify-face"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

-- GET the first page of the task list; args: PAGE_SIZE.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   wrk.method = "GET"
   wrk.path = "/v1/videos/advanced-lip-sync?pageNum=1&pageSize="
      .. assert(args[1], "usage: query_list.lua PAGE_SIZE")
end

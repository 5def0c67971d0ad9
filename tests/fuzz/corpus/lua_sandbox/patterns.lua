local s = ("k=v, a=b"):gsub("(%w+)=(%w+)", "%2=%1")
return {s = s, n = #s, t = table.concat({1, 2}, ",")}

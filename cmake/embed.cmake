# Turns IN (a text file) into OUT, a C file defining hr_lua_<NAME>[].
file(READ ${IN} hex HEX)
string(REGEX REPLACE "(..)" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}
  "/* generated from ${NAME}.lua; do not edit */\n"
  "const char hr_lua_${NAME}[] = {${bytes} 0x00};\n"
  "const unsigned long hr_lua_${NAME}_len = sizeof(hr_lua_${NAME}) - 1;\n")

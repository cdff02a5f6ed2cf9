# Turns a text file into a C string (fe_prelude_text), so the prelude ships
# inside the mswc binary. Usage: cmake -DIN=file -DOUT=file.c -P embed_text.cmake
file(READ ${IN} text HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${text}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n"
  "const char fe_prelude_text[] = {${bytes} 0x00};\n")

#include "tools.h"
const OptHelp viz_options[] = {{NULL, NULL}};
int cmd_viz(int argc, char **argv) { (void)argc; (void)argv; return 1; }

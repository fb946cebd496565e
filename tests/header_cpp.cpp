// The public header compiles as C++ and its functions link with C linkage (extern "C").
#include "edgeattn/edgeattn.h"

#include <cstdio>
#include <cstring>

int main()
{
    const char *v = edgeattn_version();
    if (v == nullptr || std::strlen(v) == 0) {
        std::fprintf(stderr, "edgeattn_version() returned nothing\n");
        return 1;
    }
    edgeattn_config cfg;
    edgeattn_config_default(&cfg);
    if (cfg.struct_version != EDGEATTN_STRUCT_VERSION) {
        std::fprintf(stderr, "edgeattn_config_default did not set struct_version\n");
        return 1;
    }
    std::printf("edgeattn %s from C++\n", v);
    return 0;
}

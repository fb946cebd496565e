/* The public header compiles on its own as strict C11 (-std=c11 -Wall -Wextra -pedantic -Werror). */
#include "edgeattn/edgeattn.h"

int main(void)
{
    return 0;
}

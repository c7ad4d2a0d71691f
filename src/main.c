/* main.c — parses the command line and wires the modules together. */
#include <stdio.h>
int main(void)
{
    puts("eltd");
    return 0;
}

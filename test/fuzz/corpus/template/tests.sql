{{ 1 is odd }} {{ 'a' in 'abc' }} {{ none is none }} {{ 3 is divisibleby 3 }} {{ [] is defined }} {{ x is undefined }}

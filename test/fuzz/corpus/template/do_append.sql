{% set l = [] %}{% do l.append(1) %}{% do l.extend([2,3]) %}{{ l }}

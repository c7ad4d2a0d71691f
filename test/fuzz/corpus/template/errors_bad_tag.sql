{% bogus %}

"""Import requests, jobs and their status."""

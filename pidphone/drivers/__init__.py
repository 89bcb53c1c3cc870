"""Everything that touches the world, each part beside a simulated twin."""
